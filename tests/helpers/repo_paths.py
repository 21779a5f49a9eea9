"""Where the repository and its tests folder are, for tests that run run.py or read files by path
(test modules sit at different depths under tests/)."""

import os

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT = os.path.dirname(TESTS)
