"""One-screen text table and a Markdown report of a benchmark result."""

from __future__ import annotations

from typing import Any

__all__ = ["format_table", "format_markdown"]


def _num(v: Any, digits: int = 1) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        if abs(v) >= 1e4:
            return f"{v:,.0f}"
        return f"{v:.{digits}f}"
    return str(v)


def _gflops(v: float | None) -> str:
    return "-" if v is None else f"{v / 1e9:.1f}"


def _model_rows(result: dict[str, Any]) -> list[list[str]]:
    rows = []
    for r in result.get("models", []):
        name = f"{r.get('model')}/{r.get('shape')}"
        if r.get("status") != "ok":
            rows.append([name, r.get("status", "?"), (r.get("reason") or "")[:70], "", "", "", "", "", "", "", ""])
            continue
        fl = r.get("flops") or {}
        mm = (fl.get("matmul") or {}).get("flop_per_s")
        rows.append([name, _num(r["train_nets_per_s"]), _num(r.get("train_nets_per_cpu_s")),
                     _num(r["infer_nets_per_s"]), _num(r["peak_rss_mb"], 0),
                     _num((r.get("saved_for_backward") or {}).get("total_mb"), 0),
                     _gflops(fl.get("forward_flops_per_batch")),
                     _gflops(fl.get("forward_flop_per_s")), _gflops(mm),
                     "-" if "forward_vs_matmul" not in fl else f"{100 * fl['forward_vs_matmul']:.0f}%",
                     "-" if r.get("cpu_share") is None else f"{100 * r['cpu_share']:.0f}%"])
    return rows


def _target_lines(result: dict[str, Any]) -> list[str]:
    lines = []
    for key, t in (result.get("targets") or {}).items():
        mark = {True: "MET ", False: "MISS", None: "n/a "}[t["met"]]
        what = t["what"] if not t.get("not_applicable") else f"not applicable: {t['not_applicable']}"
        m = t["measured"]
        shown = "-" if m is None else (f"{100 * m:.0f}%" if t["unit"] == "ratio" else
                                       (f"{m:.4f}" if t["unit"] == "R^2" else _num(float(m))))
        want = f"{100 * t['value']:.0f}%" if t["unit"] == "ratio" else _num(float(t["value"]), 2)
        lines.append(f"  [{mark}] {key:<22} {shown:>10} {t['op']} {want:<8} {t['unit']:<7} ({what})")
    return lines


def format_table(result: dict[str, Any]) -> str:
    """The result as a one-screen text table."""
    meta, cfg = result["meta"], result["config"]
    mach = meta["machine"]
    out = [f"monomial-gmn bench  {meta['date_utc']}  torch {mach['torch']}  {mach['cpu_count']} CPUs  "
           f"threads {cfg['threads_used']}  load {meta.get('loadavg_start')} -> {meta.get('loadavg_end')}",
           f"batch {cfg['batch']}  hidden {cfg['hidden']}  layers {cfg['layers']}  warm-up {cfg['warmup']}  "
           f"reps {cfg['reps']} (median)  [{cfg.get('threads_reason', '')}]",
           "n/cpu-s: nets per CPU-second; act: tensors saved for backward; fwd GF: forward GFLOP per batch; "
           "cpu got: CPU time / (wall x threads)",
           ""]
    tenv = mach.get("thread_env") or {}
    if tenv.get("OMP_WAIT_POLICY"):
        out[0] += f"  OMP_WAIT_POLICY={tenv['OMP_WAIT_POLICY']}"
    edge = sorted({f"{r['model']} edge_dim {r['edge_dim']}" for r in result.get("models", []) if r.get("edge_dim")})
    if edge:
        out[1] += "  " + ", ".join(edge)
    head = ["model/shape", "train n/s", "n/cpu-s", "infer n/s", "peak MiB", "act MiB", "fwd GF", "fwd GF/s", "mm GF/s",
            "fwd/mm", "cpu got"]
    rows = _model_rows(result)
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(head)]
    out.append("  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(head, widths))))
    for r in rows:
        if len(r) > 2 and r[1] in ("skipped", "error"):
            out.append(f"{r[0].ljust(widths[0])}  {r[1]}: {r[2]}")
        else:
            out.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
    conv = result.get("conversion") or {}
    out.append("")
    if conv.get("status") == "ok":
        out.append(f"conversion ({conv['nets']:,} CNN nets, {conv['threads']} thread): stacked "
                   f"{_num(conv['stacked_nets_per_s'])} nets/s ({_num(conv.get('stacked_nets_per_cpu_s'))} per CPU-s); batch_stacked {_num(conv['batch_stacked_nets_per_s'])}"
                   f" nets/s; per-graph path {_num(conv['per_graph_reference_nets_per_s'])} nets/s")
    elif conv:
        out.append(f"conversion: {conv.get('status')}: {conv.get('reason')}")
    sc = result.get("scaling") or {}
    if sc.get("status") == "ok":
        pts = ", ".join(f"{p['nets']:,}: {p['seconds']:.1f}s" for p in sc["points"])
        f, fd = sc["fit"], sc.get("data_fit") or {}
        what = sc["mode"] + (f", {sc['model']} hidden {sc['hidden']} x{sc['layers']}" if sc.get("model") else "")
        out.append(f"scaling epoch ({what}): {pts}")
        out.append(f"  fit t = {f['slope'] * 1e3:.3f} ms/net * n {f['intercept']:+.2f} s, R^2 = {f['r2']:.4f}, "
                   f"log-log exponent {f.get('loglog_exponent', float('nan')):.3f}"
                   + (f"; data path {fd['slope'] * 1e3:.4f} ms/net, R^2 = {fd['r2']:.4f}" if fd else ""))
        if sc.get("fallback_reason"):
            out.append(f"  (model unavailable, conversion+batching only: {sc['fallback_reason'][:70]})")
    elif sc:
        out.append(f"scaling: {sc.get('status')}: {sc.get('reason')}")
    out.append("")
    out.append("targets:")
    out.extend(_target_lines(result))
    return "\n".join(out)


def format_markdown(result: dict[str, Any]) -> str:
    """A Markdown report: command, date, machine, load, the table, targets and the profile's top ops."""
    meta, mach = result["meta"], result["meta"]["machine"]
    lines = ["# monomial-gmn benchmark", "",
             f"- command: `{meta['command']}`", f"- date (UTC): {meta['date_utc']}",
             f"- machine: {mach['platform']}, {mach['cpu_count']} CPUs, Python {mach['python']}, "
             f"torch {mach['torch']}",
             f"- load average (1/5/15 min): start {meta.get('loadavg_start')}, end {meta.get('loadavg_end')}",
             f"- wall time: {meta.get('wall_seconds', 0):.0f} s; "
             + ("every measurement ran in a fresh process" if meta.get("isolated_processes", True)
                else "measurements ran in one process (peak RSS values mix)"),
             *([] if meta.get("complete", True) else ["- **partial result: the run was still going or was cut short**"]),
             "", "```", format_table(result), "```", ""]
    def table(title: str, ops: list[dict[str, Any]]) -> None:
        lines.extend([f"## {title}", "", "| op | calls | self ms | self % |", "|---|---:|---:|---:|"])
        for op in ops:
            lines.append(f"| `{op['op']}` | {op['calls']} | {op['self_cpu_ms']:.1f} | {op['self_pct']:.1f} |")
        lines.append("")

    for r in result.get("models", []):
        if r.get("status") == "ok" and "profile_train_top_ops" in r:
            table(f"Profile: {r['model']}/{r['shape']}, training steps (torch.profiler, self CPU time)",
                  r["profile_train_top_ops"])
            table(f"Profile: {r['model']}/{r['shape']}, inference forward", r["profile_infer_top_ops"])
    conv = result.get("conversion") or {}
    if conv.get("profile_stacked_top_ops"):
        table(f"Profile: GraphSpec.stacked on {conv['nets']:,} nets", conv["profile_stacked_top_ops"])
        table("Profile: batch_stacked, 20 batches", conv["profile_batch_stacked_top_ops"])
    return "\n".join(lines) + "\n"
