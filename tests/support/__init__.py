"""Helpers shared by the tests and the benchmarks (bench/), with no pytest fixtures in them: `browser` starts the
console (or any Streamlit script) and drives it in Chromium."""
