"""Pure planning: film -> scenes -> segments (latent windows) -> phases (expert step ranges)."""
