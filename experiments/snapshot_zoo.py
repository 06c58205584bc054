"""Take the first K finished chunks of a (possibly still running) zoo build as a zoo of its own.

    python experiments/snapshot_zoo.py zoos/digits-cnn-1536 --chunks 24 --out zoos/digits-cnn-768

Chunk c of a build depends only on (kind, options, seed, c) (see ``monomial_gmn.data.build_zoo``), so the
first K full chunks are exactly the zoo ``build_zoo(kind, out, nets=K * chunk_size, seed=seed)`` would make;
this only saves the time of building them again while a larger build is under way.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("build", help="a build directory (with build.json and chunks/)")
    p.add_argument("--chunks", type=int, required=True, help="K: take chunks 0..K-1 (all must be finished)")
    p.add_argument("--out", required=True, help="output zoo directory")
    a = p.parse_args(argv)
    from monomial_gmn.data import concat_zoos, read_zoo, save_zoo

    build = Path(a.build)
    cfg = json.loads((build / "build.json").read_text())["config"]
    dirs = [build / "chunks" / f"chunk_{c:05d}" for c in range(a.chunks)]
    missing = [d.name for d in dirs if not (d / "zoo.json").is_file()]
    if missing:
        raise SystemExit(f"snapshot_zoo: chunks not finished yet: {', '.join(missing)}")
    zoo = concat_zoos([read_zoo(d) for d in dirs])
    nets = a.chunks * int(cfg["chunk_size"])
    meta = {"built": {"kind": cfg["kind"], "seed": cfg["seed"],
                      "config": {**cfg, "nets": nets},
                      "equivalent_command": f"monomial_gmn.data.build_zoo({cfg['kind']!r}, OUT, nets={nets}, "
                                            f"seed={cfg['seed']})",
                      "snapshot_of": str(build), "chunks": a.chunks}}
    save_zoo(zoo, a.out, meta=meta)
    print(f"wrote {a.out}: {len(zoo)} rows ({nets} nets)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
