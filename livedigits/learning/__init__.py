"""The learning layer: the recipe, the log learner (split by job), the in-process learner of the `all` role,
and the `learn` role's worker entry point. The only layer that imports TensorFlow."""
