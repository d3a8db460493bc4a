"""The built-in word lists of the moderation filter. Data only; `bot.moderation.filter` compiles them.

Syntax of an entry: words are matched whole after normalisation (so "sex" never fires inside "Essex"); a
trailing `*` matches any word that starts with it ("porn*": porno, pornographic); several words form a phrase
that must appear in that order ("severed head"), also when written as one word ("severedhead"). Leet digits,
look-alike letters, accents, spacing and stretching are handled by the normaliser, so lists hold plain
spellings only. The lists are deliberately short and clinical: they name things, they never describe them.
"""

from __future__ import annotations


def _entries(text: str) -> tuple[str, ...]:
    return tuple(entry.strip() for entry in text.replace("\n", " ").split(",") if entry.strip())


# Terms that block on their own, per category. `csam` cannot be switched off.
TERMS: dict[str, tuple[str, ...]] = {
    "csam": _entries(
        """
        loli, lolis, lolicon, shota, shotacon, jailbait, pedo, pedophil*, paedophil*, child porn*,
        kiddie porn*, underage porn*, underage sex, jail bait
        """
    ),
    "sexual": _entries(
        """
        porn*, pron, xvideos, xhamster, brazzers, seggs, secks, nsfw, xxx, hentai, ecchi, barely legal,
        rule 34, onlyfans, nude, nudes, nudity, naked, nekkid, birthday suit, topless, undress*, unclothed,
        no clothes, without clothes, clothes off, remove her clothes, remove his clothes,
        take off her clothes, take off his clothes, full frontal, in the nude, sex, sexually explicit,
        sexual intercourse, sex scene, sex toy*, erotic*, orgasm*, masturbat*, blowjob*, blow job*, handjob*,
        cumshot*, cum, creampie, boobs, tits, nipples, genital*, penis, penises, vagina, vaginas, pussy,
        dildo*, striptease, strip tease, bdsm, fetish*, rape, raped, raping, gangbang*, dick pic*,
        bare breasts, exposed breasts
        """
    ),
    "gore": _entries(
        """
        gore, gory, gorefest, graphic violence, decapitat*, behead*, dismember*, disembowel*, eviscerat*,
        mutilat*, flay*, entrails, severed head*, severed limb*, severed hand*, severed arm*, severed leg*,
        severed finger*, severed foot, severed feet, severed body, severed torso, brain matter,
        splattered brains, brains splattered, exposed organs, spilled guts, blood and guts, skinned alive,
        snuff film*, torture porn
        """
    ),
    "hate": _entries(
        """
        nigger, niggers, nigga, niggas, faggot, faggots, fag, fags, kike, kikes, spic, spics, chink, chinks,
        gook, gooks, wetback, wetbacks, raghead, ragheads, towelhead, towelheads, tranny, trannies,
        retarded, coon, coons, nazi flag, nazi salute, neo nazi, neo nazis,
        sieg heil, heil hitler, white power, white supremacy, white supremacist, white supremacists, kkk,
        ku klux klan, 1488, ss runes, ss bolts, happy merchant, sonnenrad
        """
    ),
}

# Words that are fine alone but not within a few words of each other: a minor next to a sexual word is csam,
# a real person next to one is real_people_sexual. Every `sexual` term above counts as a sexual word too.
MINOR = _entries(
    """
    child, children, childs, kid, kids, kiddie, minor, minors, underage, preteen*, tween, tweens, teen, teens,
    teenage, teenager*, toddler*, infant, infants, baby, babies, schoolgirl*, schoolboy*, little girl*,
    little boy*, young girl*, young boy*, middle schooler*, grade schooler*, elementary schooler*,
    high schooler*, kindergarten*, school uniform*, lolita, prepubescent, pubescent, juvenile*
    """
)

SUGGESTIVE = _entries(
    """
    sexy, sexier, sexiest, sexual, sexualised, sexualized, seductive*, sensual*, lingerie, explicit,
    provocative*, lewd, horny, kinky, busty, cleavage, panties, pinup, pin up, suggestive, stripping,
    spread legs, bedroom eyes, wedding night
    """
)

# Only sexualising about a real person or next to an explicit age ("15yo"): kids in swimsuits are not csam.
REVEALING = _entries(
    """
    bikini, bikinis, underwear, bra, thong, swimsuit
    """
)

# Well-known people most often targeted by sexualised fakes, plus ways of naming a private, real person.
# Honest limit: anyone not on this list is caught only by the explicit terms of `sexual`.
PUBLIC_FIGURES = _entries(
    """
    taylor swift, emma watson, scarlett johansson, margot robbie, billie eilish, ariana grande, selena gomez,
    kim kardashian, kylie jenner, kendall jenner, zendaya, jenna ortega, millie bobby brown, sydney sweeney,
    emma stone, natalie portman, gal gadot, anne hathaway, jennifer lawrence, jennifer aniston,
    angelina jolie, megan fox, dua lipa, olivia rodrigo, sabrina carpenter, beyonce, rihanna, shakira,
    lady gaga, katy perry, miley cyrus, nicki minaj, cardi b, ice spice, doja cat, hailey bieber,
    justin bieber, harry styles, timothee chalamet, ryan gosling, chris hemsworth, henry cavill, pedro pascal,
    tom holland, keanu reeves, dwayne johnson, donald trump, melania trump, ivanka trump, joe biden,
    kamala harris, barack obama, michelle obama, hillary clinton, alexandria ocasio cortez, elon musk,
    mark zuckerberg, jeff bezos, greta thunberg, vladimir putin, volodymyr zelensky, king charles,
    prince harry, meghan markle, kate middleton, pope francis, pokimane, belle delphine, emma chamberlain,
    jennifer lopez, salma hayek, ana de armas, florence pugh, anya taylor joy, elizabeth olsen, brie larson,
    jenna fischer, addison rae, charli damelio
    """
)

PERSONS = _entries(
    """
    celebrity, celebrities, celeb, celebs, famous actress, famous singer, deepfake*, my ex, my ex girlfriend,
    my ex boyfriend, my ex wife, my stepsister, my coworker, my colleague, my classmate, my teacher, my boss,
    my neighbor, my neighbour, my crush, the person in this photo, the woman in this photo,
    the girl in this photo
    """
)

# Undressing spelled out, as edit requests do: a verb within three words of a garment counts as `sexual`.
UNDRESS = _entries(
    """
    remove, removed, removing, take off, taking off, took off, strip, stripped, stripping, see through, x ray,
    disappear, disappears, vanish, vanishes, without, no
    """
)
GARMENTS = _entries(
    """
    clothes, clothing, bikini, bikinis, bra, bras, underwear, panties, swimsuit, swimwear, skirt, towel
    """
)

# Phrases that contain a listed word but are fine; the word inside them is ignored (also for combinations).
ALLOW = _entries(
    """
    scunthorpe, cocktail, assassin s creed, breast stroke, shooting star, sexton, cumulus, analysis,
    therapist, grape, kids playing in a park, teenage mutant ninja turtles, naked eye, naked mole rat,
    naked mole rats, naked cake, naked chef, the naked truth, naked lunch, naked singularity, blood orange,
    bloody mary, kill la kill, cum laude, summa cum laude, magna cum laude, al gore, gore tex, gore vidal,
    blue tit, blue tits, great tit, great tits, coal tit, coal tits, tit for tat, pussy willow, pussy willows,
    pussy cat, maine coon, maine coons, coon hound, coon dog, chink in the armor, chink in the armour,
    chink in his armor, chink in his armour, chink of light, hindu swastika, buddhist swastika, jain swastika,
    same sex, opposite sex, sex pistols, sex and the city, sex education, nude color, nude colored,
    nude colour, nude coloured, nude lipstick, nude lip, nude heels, nude shoes, nude pumps, nude makeup,
    nude palette, nude tone, nude nails, nude beige, topless convertible, topless car, topless bus,
    rape field, rape fields, oilseed rape, rape seed, rape oil, dildo newfoundland, food porn, earth porn,
    cabin porn, ruin porn, sex chromosome*, coon rapids, fag end*, spic and span, white power ranger*,
    white power bank*, white power cord*, white power cable*, white power strip*, white power outlet*,
    bottle nipple*, mind flayer*, rape of proserpina, rape of the sabine women, rape of europa,
    rape of the lock, minor key*, minor chord*, minor league*, asia minor, ursa minor, pussy riot,
    fetish figure*, fetish object*, fetish statue*, naked flame*, naked tree*, naked branch*
    """
)
