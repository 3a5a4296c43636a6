"""Toy-faces domain: a procedural face renderer with ground truth, scoring tools and the recipe
that trains the small base model (DESIGN.md section 5)."""
