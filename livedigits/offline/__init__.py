"""Offline work: training the shipped originals, evaluating them on MNIST's test split, the held-out slice,
and the generators of canvas drawings and of non-digits."""
