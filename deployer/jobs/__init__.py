"""Cloud Run jobs around a rollout: inputs, the Job body, and executing and waiting for them."""
