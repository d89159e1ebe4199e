"""The bundled GRPO training loop (TRL GRPOTrainer, rewards from SCRIBE-RM). Extra: scribe-rm-client[train]."""
