"""A local copy of OSV vulnerability data: download per-ecosystem bulk archives into an
indexed SQLite database, and match installed packages against it with each ecosystem's
own version rules (dpkg, apk, PEP 440)."""
