"""The Flask delivery API and the irtcat command line."""
