"""Attack suites: each performs an attack a hostile agent would try, with the real tools, and shows it fail."""
