from supervisor.daemon import main

main()
