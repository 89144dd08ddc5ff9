// Isolation forest, feature vectors and the detector.
