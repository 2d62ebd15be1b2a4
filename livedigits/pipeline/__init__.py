"""Pure functions over arrays: decode and validate a drawing, preprocess it the MNIST way, augment it, answer."""
