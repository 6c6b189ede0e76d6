from embedrouter.cli import main

raise SystemExit(main())
