"""Words that are never part of a person's name where a context recognizer looks for one: function words,
days, roles and help-desk nouns in the languages the policy can name."""

from __future__ import annotations

COUNTRIES = frozenset("""
    afghanistan albania algeria argentina armenia australia austria azerbaijan bangladesh belarus belgium bolivia
    bosnia brazil bulgaria cambodia cameroon canada chile china colombia croatia cuba cyprus czech czechia denmark
    ecuador egypt estonia ethiopia finland france germany ghana greece greenland guatemala haiti honduras hungary
    iceland india indonesia iran iraq ireland israel italy japan kazakhstan kenya korea kosovo kuwait latvia
    lebanon libya lithuania luxembourg malaysia mali malta mexico moldova mongolia montenegro morocco mozambique
    nepal netherlands nicaragua niger nigeria norway oman pakistan panama paraguay peru philippines poland portugal
    qatar romania russia rwanda senegal serbia singapore slovakia slovenia somalia spain sudan sweden switzerland
    syria taiwan tanzania thailand tunisia turkey uganda ukraine uruguay uzbekistan venezuela vietnam yemen zambia
    zimbabwe republic kingdom states united emirates england scotland wales britain europe africa asia america
""".split())

# English contractions, with either apostrophe: a capitalised one ends a name ("Maisie Griffiths What's ...").
CONTRACTIONS = frozenset(w.replace("'", q) for w in """
    i'm i'll i'd i've it's what's that's there's here's he's she's let's who's where's how's we're you're they're
    we've you've they've we'll you'll they'll don't can't won't isn't aren't doesn't didn't wasn't haven't
""".split() for q in "'’")

# Titles before a name, in the languages a policy can name: never a name alone.
TITLES = frozenset("mr mrs ms miss dr prof sr sra srta sir dame herr frau mme mlle m".split())

NOT_NAMES = COUNTRIES | TITLES | frozenset("""
    the a an and or to of for on in at is was be been it this that you your we our my me us them they he she his her
    i sir madam team all everyone there support desk service please ticket case issue today tomorrow yesterday
    monday tuesday wednesday thursday friday saturday sunday morning afternoon evening not no yes just also still
    again now here help their its who what when where why how can will would could should may might must do does
    did have has had get got new old other same any some each every more most very many much one two three first
    last next previous admin administrator user users customer client employee manager staff hr it finance legal
    sales account accounts billing security number home logs log profile locked unable trying having going working
    calling writing looking sorry glad happy good great fine okay ok hi hello dear thanks regards best kind warm
    cheers sincerely team group department dept office desk helpdesk servicedesk it-support re fw fwd subject
    info information details personal address phone mobile fax email e-mail contact name date
    january february march april june july august september october november december
    o os as um uma uns umas e ou de do da dos das em no na nos nas por para com sem que se não sim obrigado
    bom dia boa tarde noite olá ola prezado prezada senhor senhora equipe suporte cliente chamado
    el la los las un una unos unas y o del al en con sin que se no sí por para gracias hola buenos buenas días
    señor señora equipo soporte incidencia usuario
    der die das ein eine einen dem den des und oder zu von mit für auf im ist war sie er es wir ihr ich nicht ja
    nein danke bitte hallo guten tag morgen abend herr frau team kunde kundin ticket
    le la les un une des et ou du de au aux en dans pour par avec sur est était vous nous il elle je ne pas oui
    non merci bonjour bonsoir madame monsieur équipe client cliente utilisateur
    hier aujourd'hui demain selon según ayer hoy mañana ontem hoje amanhã gestern heute laut gemäß him
""".split()) | CONTRACTIONS

# Capitalised words that start the next sentence or field: never a word of a place's name.
NOT_PLACES = frozenset("""
    i i'm i'll i'd i've my me we our you your he she his her they their it it's its this that the these those is
    are was were be can could would will should may might must do does did how what when where why who which
    please thanks thank hi hello dear regards best cheers sincerely name email e-mail phone mobile tel fax
    and or but if so also then there here yes no not call contact subject date dob from to cc
    monday tuesday wednesday thursday friday saturday sunday today tomorrow yesterday week weekend
    january february march april june july august september october november december
    jan feb mar apr jun jul aug sep sept oct nov dec
""".split())
