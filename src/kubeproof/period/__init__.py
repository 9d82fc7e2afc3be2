"""Period reports: what the evidence store shows over an audit period (a SOC 2 Type II
window), per criterion and per workload, in HTML, PDF, CSV, JSON and OSCAL."""

FORMATS = ("html", "pdf", "csv", "json", "oscal")
