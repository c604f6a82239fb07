"""The playbooks slice: the vendor's versioned rules of engagement, read from `playbooks/*.yaml`
and validated (`library`), and the business calendar a playbook defines (`calendar`: working
days, holidays, deadlines in business days)."""
