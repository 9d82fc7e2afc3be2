"""Container images without a container runtime: read an image (OCI layout, docker-archive
tarball or an OCI distribution registry), find its OS and installed packages, and describe
them as a CycloneDX SBOM. Only the few files that hold package data are ever read, into
memory; nothing is extracted to disk."""
