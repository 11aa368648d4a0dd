"""Shared core of the book-metadata workers."""
