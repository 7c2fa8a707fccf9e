from mlyard.cli.main import main

main()
