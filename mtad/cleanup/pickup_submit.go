package cleanup

// HeaderAddresses returns the addresses in an address header's value (or
// in a sendmail command-line recipient, which Postfix parses the same
// way), in internal form: what tok822_grep(TOK822_ADDR) and
// tok822_internalize give sendmail -t. Group names, display names and
// comments are dropped; "Joe Smith" without an address gives nothing.
func HeaderAddresses(value string) []string {
	var out []string
	for _, n := range parseAddrHeader(scanHeaderTokens(value)) {
		if n.kind == 'A' {
			out = append(out, internalAddr(externalAddr(n.addr)))
		}
	}
	return out
}
