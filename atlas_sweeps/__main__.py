from atlas_sweeps.cli import main

main()
