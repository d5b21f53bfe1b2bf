"""The run folder: its layout and tables, read back for browsing."""
