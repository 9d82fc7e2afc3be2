from kubeproof.cli.main import main

raise SystemExit(main())
