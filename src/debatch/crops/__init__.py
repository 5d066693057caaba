"""Crops: which cells get a crop (eligible), the fixed-size corrected crop of each (cut), and
opening a plate's crops with their table (store)."""
