"""What an induction writes: the draft cards, patches.json, induction.json, and the report as Markdown
(proposals, nearest existing card and similarity, cluster quality) and a PNG (cluster sizes; a 2-D PCA
projection of the clustered steps coloured by proposed card)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from .induce import Induction
from .merge import write_patches
from .review import write_card


def summary(induction: Induction) -> dict:
    c = induction.clustering
    fates = Counter(f.fate for f in induction.fates)
    return {
        "domain": induction.domain,
        "units": len(induction.units),
        "covered": fates["covered"],
        "clustered": len(induction.clustered),
        "distinct_clustered": len(induction.distinct),
        "k": c.k, "silhouette": c.silhouette, "silhouettes": c.silhouettes,
        "fates": dict(fates),
        "merge_threshold": induction.merge_threshold,
        "decomposition": {"items": induction.decomposition.items, "llm_used": induction.decomposition.llm_used,
                          "llm_rejected": induction.decomposition.llm_rejected,
                          "rejections": induction.decomposition.rejections},
        "quality": induction.quality(),
        "proposals": [{"cluster": p.cluster, "action": p.action, "size": len(p.member_ids), "distinct": p.distinct,
                       "card_id": p.card.id if p.card else (p.patch.card_id if p.patch else None),
                       "nearest": p.nearest.__dict__ if p.nearest else None, "majority_label": p.majority_label,
                       "error": p.error, "review": p.review, "member_ids": p.member_ids} for p in induction.proposals],
        "steps": [{"id": induction.units[f.unit].id, "fate": f.fate, "detail": f.detail} for f in induction.fates],
    }


def markdown(induction: Induction) -> str:
    s = summary(induction)
    fates = ", ".join(f"{n} {fate.replace('_', ' ')}" for fate, n in sorted(s["fates"].items()))
    lines = [f"# Induction report: domain `{s['domain']}`", "",
             f"- {s['units']} steps from {s['decomposition']['items']} trajectories: {fates}.",
             f"- {s['clustered']} steps clustered as {s['distinct_clustered']} distinct texts (repeats of one text "
             "count once: in cluster sizes, the minimum size and a card's examples).",
             f"- k = {s['k']} (silhouette {s['silhouette'] if s['silhouette'] is None else round(s['silhouette'], 3)}).",
             f"- Merge threshold (cosine to an existing card's anchor centroid): {s['merge_threshold']}."]
    d = s["decomposition"]
    if d["llm_used"] or d["llm_rejected"]:
        lines.append(f"- LLM decomposition: {d['llm_used']} responses cut by the model, {d['llm_rejected']} "
                     "replies failed the verbatim check and were split by rule.")
    if s["quality"]:
        q = s["quality"]
        lines.append(f"- Against the skill labels of {q['n']} steps: purity {q['purity']}, adjusted Rand index "
                     f"{q['ari']}, clustered share {q['clustered_share']}.")
    lines += ["", "| cluster | steps | distinct | proposal | nearest existing card | similarity | majority label |",
              "|---:|---:|---:|---|---|---:|---|"]
    for p in induction.proposals:
        what = {"card": f"new draft `{p.card.id}`" if p.card else "",
                "patch": f"anchors for `{p.patch.card_id}`" if p.patch else "",
                "refused": f"refused: {(p.error or '')[:120]}",
                "left_out": f"left out: {p.error}"}[p.action]
        if p.review:
            what += f" (review: {p.review})"
        nearest = (f"`{p.nearest.card_id}`", f"{p.nearest.similarity:.3f}") if p.nearest else ("-", "-")
        lines.append(f"| {p.cluster} | {len(p.member_ids)} | {p.distinct} | {what} | {nearest[0]} | {nearest[1]} | "
                     f"{p.majority_label or '-'} |")
    lines += ["", "![clusters](report.png)", ""]
    for p in induction.proposals:
        if p.card is not None:
            lines += [f"## `{p.card.id}`: {p.card.name}", "", f"When to use: {p.card.when_to_use}", ""]
            if p.review:
                lines += [f"**Review:** {p.review}.", ""]
            lines += ["Examples (routing anchors):"] + [f"- {e}" for e in p.card.examples] + [""]
    lines += ["## Every step", "", "| step | fate | detail |", "|---|---|---|"]
    lines += [f"| {step['id']} | {step['fate'].replace('_', ' ')} | {step['detail']} |" for step in s["steps"]]
    return "\n".join(lines) + "\n"


def plot(induction: Induction, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.decomposition import PCA

    fig, (sizes, projection) = plt.subplots(1, 2, figsize=(13, 5))
    names = [p.title for p in induction.proposals]
    colours = {"card": "tab:green", "patch": "tab:blue", "refused": "tab:red", "left_out": "tab:grey"}
    sizes.barh(range(len(names)), [len(p.member_ids) for p in induction.proposals],
               color=[colours[p.action] for p in induction.proposals])
    sizes.set_yticks(range(len(names)), names, fontsize=8)
    sizes.invert_yaxis()
    sizes.set_xlabel("steps in cluster")
    sizes.set_title("Clusters (green: new draft, blue: patch, red: refused, grey: left out)")
    labels = induction.clustering.labels
    if len(induction.vectors) >= 2:
        points = PCA(n_components=2, random_state=0).fit_transform(induction.vectors)
        left_out = labels < 0
        projection.scatter(points[left_out, 0], points[left_out, 1], c="lightgrey", s=12, label="left out")
        cmap = plt.get_cmap("tab20")
        for k, proposal in enumerate(induction.proposals):
            mask = labels == proposal.cluster
            projection.scatter(points[mask, 0], points[mask, 1], s=16, color=cmap(k % 20), label=proposal.title)
        projection.legend(fontsize=7, loc="best")
    projection.set_title("Distinct steps, PCA of their features, by proposed card")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(induction: Induction, out: Path) -> list[Path]:
    (out / "report.md").write_text(markdown(induction), encoding="utf-8")
    plot(induction, out / "report.png")
    return [out / "report.md", out / "report.png"]


def write_induction(induction: Induction, out: Path) -> list[Path]:
    """Drafts as `<out>/<name>.yaml`, `patches.json`, `induction.json`, `report.md` and `report.png`."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for proposal in induction.proposals:
        if proposal.card is not None:
            path = out / f"{proposal.card.id.split('.', 1)[1]}.yaml"
            write_card(proposal.card, path)
            written.append(path)
    write_patches([p.patch for p in induction.proposals if p.patch is not None], out / "patches.json")
    (out / "induction.json").write_text(json.dumps(summary(induction), indent=2, default=str), encoding="utf-8")
    written += [out / "patches.json", out / "induction.json"] + write_report(induction, out)
    return written
