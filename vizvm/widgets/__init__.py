"""The machine screen's panels and controls; each gets state pushed down and posts messages up."""
