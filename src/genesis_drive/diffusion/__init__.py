"""Flow matching (rectified flow) as plain functions apart from the networks: time sampling,
targets and losses, ODE samplers, classifier-free guidance."""
