"""What a command does between parsing its options and rendering, where that takes more than one library call."""
