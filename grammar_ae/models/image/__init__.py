"""Image autoencoders: convolutional networks on uint8 images with any objective of the regularizer core."""
