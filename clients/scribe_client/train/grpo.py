"""`scribe-train`: GRPO with TRL's GRPOTrainer, rewarded by SCRIBE-RM (outcome + process, weights
configurable). Defaults suit a CPU and the bundled SmolLM2-135M-Instruct; any HF model works on a GPU."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

import typer

from ..adapters import as_text
from ..client import AsyncScribeClient
from ..trl import make_trl_reward
from .credit_trainer import CREDIT_MODES, CapturedResults, step_credit_trainer
from .dynamics import DynamicsLog, plot
from .tasks import make_tasks, outcome

DEFAULT_POLICY = Path(os.environ.get("SCRIBE_JUDGE_MODEL_DIR", Path.home() / ".cache/scribe-rm/models/smollm2-135m-instruct"))
app = typer.Typer(help=__doc__, add_completion=False)


@app.command()
def train(
    service_url: str = typer.Option("http://127.0.0.1:8000", help="SCRIBE-RM base URL."),
    model: Path = typer.Option(DEFAULT_POLICY, help="Policy: an HF model directory."),
    out_dir: Path = typer.Option(Path("runs/grpo"), help="dynamics.jsonl, skill_curves.png, checkpoints."),
    max_steps: int = typer.Option(20, min=1),
    num_tasks: int = typer.Option(96, min=1),
    batch_size: int = typer.Option(4, min=1, help="Per-device batch (completions per step)."),
    num_generations: int = typer.Option(4, min=2, help="GRPO group size."),
    max_completion_length: int = typer.Option(96, min=8),
    learning_rate: float = typer.Option(1e-5),
    weight_outcome: float = typer.Option(0.7),
    weight_process: float = typer.Option(0.3),
    credit: str = typer.Option("mixed", help=f"{' | '.join(CREDIT_MODES)}: the scalar reward (weights above); the "
                               "outcome alone; DeepSeekMath's process supervision (per-token advantages from the "
                               "step scores); that plus the group-normalized outcome (weights above)."),
    aggregation: str = typer.Option("mean", help="mean | min | last | first_error | product"),
    use_vllm: bool = typer.Option(False, help="Generate with TRL's vLLM integration (GPU)."),
    timeout_s: float = typer.Option(600.0, help="Per reward call; the service answers before it."),
    seed: int = typer.Option(0),
    refresh_every: int = typer.Option(0, min=0, help="Every N steps, draft cards from the service's coverage "
                                      "gaps and (with --auto-accept) reload the service with them; 0: off."),
    refresh_domain: str = typer.Option("tool_use", help="The domain whose gaps the refresh drafts cards for."),
    auto_accept: bool = typer.Option(False, help="Accept drafted cards without review (demos); default: drafts "
                                     "are left in out_dir/refresh-N for review."),
    library_dir: Optional[Path] = typer.Option(None, help="The service's library directory (for --auto-accept)."),
    admin_key: Optional[str] = typer.Option(None, envvar="SCRIBE_ADMIN_API_KEY", help="For the reload."),
) -> None:
    import torch
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    if credit not in CREDIT_MODES:
        raise typer.BadParameter(f"--credit must be one of {', '.join(CREDIT_MODES)}")
    tasks = make_tasks(num_tasks, seed)
    dataset = Dataset.from_list([{"prompt": t["prompt"], "answer": t["answer"], "kind": t["kind"]} for t in tasks])
    log = DynamicsLog(out_dir / "dynamics.jsonl")
    client = AsyncScribeClient(service_url, timeout_s=timeout_s)

    def outcome_of(prompt: Any, completion: Any, answer: float, kind: str, **_: Any) -> Optional[float]:
        return outcome(as_text(completion, "assistant"), answer, kind)

    captured = CapturedResults()  # the trainer writes each step's record, with its advantages
    weights = {"outcome": 1.0, "process": 0.0} if credit == "outcome" else {"outcome": weight_outcome,
                                                                             "process": weight_process}
    reward = make_trl_reward(client, outcome_fn=outcome_of, on_results=captured, name="scribe", weights=weights,
                             aggregation=aggregation)
    gpu = torch.cuda.is_available()
    args = GRPOConfig(
        output_dir=str(out_dir / "checkpoints"), max_steps=max_steps, per_device_train_batch_size=batch_size,
        num_generations=num_generations, max_completion_length=max_completion_length,
        learning_rate=learning_rate, logging_steps=1, save_strategy="no", report_to="none", seed=seed,
        bf16=gpu, use_cpu=not gpu, use_vllm=use_vllm,
    )
    callbacks = []
    if refresh_every:
        from .refresh import LibraryRefresh

        callbacks.append(LibraryRefresh(service_url, refresh_every, out_dir, refresh_domain, log, library_dir,
                                        auto_accept, admin_key, client=client))
    trainer = step_credit_trainer(GRPOTrainer)(model=str(model), reward_funcs=[reward], args=args,
                                               train_dataset=dataset, callbacks=callbacks, credit=credit,
                                               captured=captured, log=log, w_outcome=weight_outcome,
                                               w_process=weight_process)
    trainer.train()
    png = plot(log.path, out_dir / "skill_curves.png")
    arrived = sum(r["n_samples"] - r["failed"] for r in log.records)
    typer.echo(f"trained {max_steps} steps with credit {credit}; {arrived} rewards arrived from SCRIBE-RM; "
               f"log {log.path}; plot {png}")
    for event in log.refreshes:
        typer.echo(f"library refresh at step {event['step']}: {len(event['drafts'])} drafts, "
                   f"{len(event['accepted'])} accepted, library {event['library_version']}")


if __name__ == "__main__":
    app()
