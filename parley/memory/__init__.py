"""Knowledge bases: chunking, embedding jobs, vector and BM25 indexes, filters, search."""
