"""Jobs only: training a sequence or an image model, and the image benchmark."""
