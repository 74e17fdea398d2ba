"""Training: recipes, the training policy, plans and frameworks (Unsloth, TRL)."""
