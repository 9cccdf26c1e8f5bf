"""Ladder diagrams of a run: each connection's life, drawn from its pcap,
the event logs of echod and echoc, and the socket snapshots, on one time
axis. model builds the Picture; svg, text and mermaid draw it, so the
three never disagree.

    from faultline.ladder import model, mermaid, svg, text
    picture = model.from_artifacts("artifacts/run/unp-5.12-premature-block")
    text.render(picture)        # a terminal, a CI log: bounded width and length
    svg.document(picture)       # a browser, report.html: standalone SVG
    mermaid.markdown(picture)   # Markdown (a GitHub job summary)
    mermaid.diagram(ladder)     # one ladder's sequenceDiagram

command is `faultline ladder`.
"""
