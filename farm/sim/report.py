"""The bench's tables (pure: strings from rows): seeds folded into median and spread, the
calibrated costs with their sources, and the sensitivity variants of the cost model."""

from __future__ import annotations

import statistics
from dataclasses import replace

from farm.sched.output import Layout
from farm.sim.costs import (
    LIGHTX2V_CFG2_SP4_S,
    LIGHTX2V_ONE_S,
    OFFICIAL_PEAK_8,
    CostModel,
    nonweight_bytes,
)
from farm.sim.workload import make_film

BASELINES = ("official", "xdit", "naive")
_KEYS = ("makespan_s", "makespan_over_lower_bound", "makespan_over_best", "ttff_s",
         "p50_latency_s", "p95_latency_s", "utilisation", "lower_bound_s", "switched_phases")


def aggregate(rows: list[dict]) -> list[dict]:
    """One row per (gpus, workload, system): the median of each number over seeds, and
    the makespan's spread (min, max); config of the first seed."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["gpus"], r["workload"], r["system"]), []).append(r)
    out = []
    for (gpus, workload, system), rs in groups.items():
        row = {"gpus": gpus, "workload": workload, "system": system,
               "config": rs[0]["config"], "seeds": len(rs)}
        for k in _KEYS:
            row[k] = statistics.median(r[k] for r in rs)
        row["makespan_min"] = min(r["makespan_s"] for r in rs)
        row["makespan_max"] = max(r["makespan_s"] for r in rs)
        out.append(row)
    return out


def verdicts(rows: list[dict]) -> list[dict]:
    """Per (gpus, workload): reelfarm's makespan over the best baseline's, per seed and
    the median (the row is won when the median <= 1)."""
    by: dict[tuple, dict[str, list[float]]] = {}
    for r in rows:
        key = (r["gpus"], r["workload"], r.get("seed", 0))
        by.setdefault(key, {})[r["system"]] = [r["makespan_s"], r["lower_bound_s"],
                                               r.get("switched_phases", 0.0)]
    cells: dict[tuple, list[tuple[float, ...]]] = {}
    for (gpus, workload, _), systems in by.items():
        rf, bound, switched = systems["reelfarm"]
        best = min(systems[s][0] for s in BASELINES if s in systems)
        cells.setdefault((gpus, workload), []).append(
            (rf / best, rf / bound, best / bound, switched))
    return [{"gpus": g, "workload": w, "ratio": statistics.median(c[0] for c in cs),
             "ratio_max": max(c[0] for c in cs),
             "rf_over_bound": statistics.median(c[1] for c in cs),
             "best_over_bound": statistics.median(c[2] for c in cs),
             "rf_switched": statistics.median(c[3] for c in cs)}
            for (g, w), cs in sorted(cells.items())]


def table(agg: list[dict]) -> str:
    """The rows; `switch`: reelfarm's phases that waited for an expert switch."""
    head = (f"{'GPUs':>4} {'workload':<12} {'system':<8} {'config':<44} {'makespan':>9} "
            f"{'[min-max]':>17} {'/bound':>6} {'/best':>6} {'TTFF s':>7} {'p50 s':>7} "
            f"{'p95 s':>7} {'util':>5} {'switch':>6}")
    lines = [head, "-" * len(head)]
    for r in agg:
        spread = f"[{r['makespan_min']:.0f}-{r['makespan_max']:.0f}]" if r["seeds"] > 1 else ""
        switch = f" {r['switched_phases']:>6.0%}" if r["system"] == "reelfarm" else ""
        lines.append(
            f"{r['gpus']:>4} {r['workload']:<12} {r['system']:<8} {r['config'][:44]:<44} "
            f"{r['makespan_s']:>9.1f} {spread:>17} {r['makespan_over_lower_bound']:>6.3f} "
            f"{r['makespan_over_best']:>6.3f} {r['ttff_s']:>7.1f} {r['p50_latency_s']:>7.1f} "
            f"{r['p95_latency_s']:>7.1f} {r['utilisation']:>5.2f}" + switch)
    return "\n".join(lines)


def cost_table(c: CostModel) -> str:
    """Every cost the systems share, its value and where it comes from."""
    plan = make_film("t2v-a14b", 720, [81])
    t2v = c.speedup("t2v-a14b", 720)
    rows = [
        ("step, T2V 720p (one CFG step, 81 frames)",
         f"{c.ref_step_s('t2v-a14b', 720, 'high'):.2f} s",
         "published 1-GPU 1041.5 s less swap, text, decode, / 40 [read + split]"),
        ("Ulysses G = 4 / 8 (clip)", f"{t2v.clip_s(4, c.ib_bytes_per_s):.1f} / "
         f"{t2v.clip_s(8, c.ib_bytes_per_s):.1f} s", "published Wan2.2 H100 table [read]"),
        ("Ulysses G = 2, 5, 10, 20, 40 (clip)", f"{t2v.clip_s(2, c.ib_bytes_per_s):.1f}, "
         f"{t2v.clip_s(5, c.ib_bytes_per_s):.1f}, {t2v.clip_s(10, c.ib_bytes_per_s):.1f}, "
         f"{t2v.clip_s(20, c.ib_bytes_per_s):.1f}, {t2v.clip_s(40, c.ib_bytes_per_s):.1f} s",
         "s + p/G through 4 and 8 GPUs, + IB all-to-all beyond a node [inferred]"),
        ("CFG-parallel efficiency", f"{c.cfg_efficiency:.3f}",
         f"LightX2V CFG2xU4 {LIGHTX2V_CFG2_SP4_S} s vs {LIGHTX2V_ONE_S} s on 1 GPU, over the "
         f"table's Ulysses-4 ratio [inferred from read]"),
        ("ratio CFG2xU4 / U8 (phase, vs 1 GPU)", f"{c.gang_ratio(plan, Layout(2, 4)):.3f} / "
         f"{c.gang_ratio(plan, Layout(1, 8)):.3f}", "the two rows above"),
        ("expert / UMT5-XXL / VAE (bf16)",
         f"{c.expert_bytes / 1e9:.1f} / {c.text_bytes / 1e9:.1f} / {c.vae_bytes / 1e9:.1f} GB",
         "official configs, counted (farm.spec.weights) [read]"),
        ("non-weight memory per rank, 720p / 480p", f"{nonweight_bytes(720) / 1e9:.2f} / "
         f"{nonweight_bytes(480) / 1e9:.2f} GB",
         f"official 8-GPU peaks {OFFICIAL_PEAK_8[720] / 1e9} / {OFFICIAL_PEAK_8[480] / 1e9} GB "
         f"less the FSDP weight shard [inferred]"),
        ("both experts on one 80 GB GPU", "no" if not c.experts_fit(plan, Layout(1, 1), 2)
         else "yes", "the two rows above; so one-GPU clips and generalists switch"),
        ("offload 'shard': a rank of a gang of 8", f"{2 * c.expert_bytes / 8 / 1e9:.2f} GB, "
         f"{2 * c.switch_s / 8:.1f} s once per gang", "both experts / 8 (FSDP-style, "
         "farm.model.shard), loaded at the switch rate; the gang's phases switch nothing"),
        ("expert switch / one-GPU offload", f"{c.switch_s:.1f} s / {c.swap_s:g} s per clip",
         "expert bytes at LightX2V's offload rate, 3.5 GB/s (839.8 vs 823.5 s) [inferred]"),
        ("text / image encode / decode (81 frames)", f"{c.text_s:g} / 3.2 / "
         f"{dict(c.decode_s)[720]:g} s (720p)", "[assumed] / VAE FLOPs / LightX2V 480p 2.2 s "
                                                "[read], scaled by pixels"),
        ("band decode: whole-frame share per band", f"{c.decode_whole_frame:g}",
         "decoder layer sizes [inferred]"),
        ("gang set-up (forming groups)", f"{c.gang_setup_s:g} s", "[assumed]; sensitivity 5 s"),
        ("handoff link / inter-node link", f"{c.link_bytes_per_s / 1e9:g} / "
         f"{c.ib_bytes_per_s / 1e9:g} GB/s", "100 Gb/s Ethernet / InfiniBand NDR [assumed]"),
        ("node size; straddling group pays", f"{c.node_gpus} GPUs; "
         f"+{c.straddle_ratio(plan, Layout(1, 5)) * t2v.seconds[0][1]:.0f} s per 720p clip "
         f"at G=5", "Ulysses all-to-all 13.5 GB/GPU/forward at P=8 over IB [inferred]"),
    ]
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"  {name:<{width}}  {value:<22} {source}" for name, value, source in rows)


# name -> (cost model, workload override) for `--sensitivity`; the first is the baseline.
def variants(base: CostModel) -> list[tuple[str, CostModel, str | None]]:
    return [
        ("calibrated", base, None),
        ("CFG efficiency 0.9", replace(base, cfg_efficiency=0.9), None),
        ("CFG efficiency 1.0 (free)", replace(base, cfg_efficiency=1.0), None),
        ("memory: both experts fit", replace(base, nonweight_bytes=10.5e9), None),
        ("gang set-up 5 s", replace(base, gang_setup_s=5.0), None),
        ("band decode 5 % whole-frame", replace(base, decode_whole_frame=0.05), None),
        ("2-GPU time x1.1", replace(base, two_gpu_scale=1.1), None),
        ("scenes: 12 single windows", base, "single-12x81"),
    ]


def sensitivity_table(cells: dict[str, dict[tuple[int, str], float]]) -> str:
    """Rows: variants; columns: (gpus, workload); cell: reelfarm / best baseline."""
    cols = sorted({k for v in cells.values() for k in v})
    head = f"{'variant':<32}" + "".join(f"{f'{g} {w[:9]}':>15}" for g, w in cols)
    lines = [head, "-" * len(head)]
    for name, row in cells.items():
        lines.append(f"{name:<32}" + "".join(
            f"{row[c]:>15.3f}" if c in row else f"{'':>15}" for c in cols))
    return "\n".join(lines)
