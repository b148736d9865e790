"""Text becomes a graph: the lexer, the parser, word expansion and shard placeholders."""
