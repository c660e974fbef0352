"""Segmentation from feature maps: hypercolumns clustered (k-means) or a pixel head trained on them."""
