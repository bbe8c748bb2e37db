from devstack.demo.command import main

raise SystemExit(main())
