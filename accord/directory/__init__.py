"""The directory slice: partners, people, territories and accounts (`records`: the import of a
directory file, its checks, and looking actors and names up), the seats mediators and board
members hold on disputes (`seats`: capacity, reservations, releases), and the demo's directory
(`demo`)."""
