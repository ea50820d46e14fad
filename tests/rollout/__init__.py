"""rollout/: model rollouts on reload, their gate and the store."""
