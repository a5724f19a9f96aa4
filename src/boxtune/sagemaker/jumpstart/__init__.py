"""``sagemaker.jumpstart``: JumpStartEstimator / JumpStartModel, the model listing and filters."""
