{#
    Text normalisation that gives the same result on every database, whatever its collation or
    locale (the embedded server's is C, where lower('É') is 'É'). Both use Postgres' builtin
    collation provider (no ICU, no operating-system locale), so a key derived from their result is
    the same everywhere. Python equivalents, for checks outside the database, are in each comment. The bodies, per
    database, are in macros/portable.sql (`default__lower_text`, `spark__fold_text`, ...).
#}

{#
    Lower-cased with Unicode's simple case mapping (Python: `text.lower()` for all but a few
    special letters): emails, handles, platforms, uuids. Postgres 17+.
#}
{% macro lower_text(text) -%}
    {{ return(adapter.dispatch('lower_text', 'duel')(text)) }}
{%- endmacro %}

{#
    Compatibility-normalised and case-folded: the characters that are invisible inside a word
    dropped (soft hyphen, zero-width space, word joiner, zero-width no-break space: a name copied
    from a web page or a word processor keeps them), Unicode NFKC, runs of whitespace as one
    space, then full case folding (Python: `re.sub(r"[ \t\n\r\f\v]+", " ", unicodedata.normalize(
    "NFKC", re.sub("[\u00ad\u200b\u2060\ufeff]", "", text))).casefold()`).
    'NESTLÉ  Group', 'Nestlé group', 'NESTLE\u0301 GROUP' and 'Nest\u00adlé Group' all fold to
    'nestlé group', and 'STRASSE' and 'Straße' to 'strasse'. Postgres 18+ (casefold, collation
    pg_unicode_fast).
#}
{% macro fold_text(text) -%}
    {{ return(adapter.dispatch('fold_text', 'duel')(text)) }}
{%- endmacro %}
