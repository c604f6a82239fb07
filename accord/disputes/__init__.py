"""The disputes slice: filing a dispute, the table of actions people take on one and their
dispatch to its workflow, and the evidence attached to it. The web pages, the API, the email
intake and the CLI all file and act through here, so each rule is said once."""
