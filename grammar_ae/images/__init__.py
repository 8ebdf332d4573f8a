"""Image side of the toolkit: data sets, convolutional networks, sample-quality metrics."""
