"""The networks (numpy FNN, TensorFlow CNN and its numpy forward pass) and the "not a digit" detector."""
