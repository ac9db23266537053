from portal.main import main

main()
