"""Object recognition from feature maps: training, evaluation, prediction and class activation maps.

:func:`recognize` is the one entry for "what is this, and where did the model see it": the prediction,
the picture the model saw and its Grad-CAM from one decode and one forward pass (the CLI's ``predict
--cam``, the explorer and the demo all call it).
"""

from featuremaps.recognize.predict import Recognition, class_activation_map, predict, recognize

__all__ = ["Recognition", "class_activation_map", "predict", "recognize"]
