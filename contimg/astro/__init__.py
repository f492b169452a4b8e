"""Domain knowledge of DSA-110: site and stations, times/LST, frequencies, primary beam,
calibrator catalogue. Knows nothing of the database."""
