"""What a trained run is worth: reconstruction, validity and novelty of sequence runs, sample quality of image runs."""
