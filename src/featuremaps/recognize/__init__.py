"""Object recognition from feature maps: training, evaluation, prediction and class activation maps."""
