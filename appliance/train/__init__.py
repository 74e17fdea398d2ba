"""Training: recipes, the training policy, plans and engines."""
