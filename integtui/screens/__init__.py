"""One module per screen: main, detail, and the connect, confirm, configure, share and help modals."""
