# The perl real-program test: text generation and processing with hashes,
# arrays, regexes, sort and sprintf.  Deterministic output.
use strict;
use warnings;

my @words = map { sprintf("w%03d", ($_ * 7919) % 500) } 0 .. 199_999;
my %count;
$count{$_}++ for @words;
my @top = (sort { $count{$b} <=> $count{$a} || $a cmp $b } keys %count)[0 .. 4];
print "words ", scalar(@words), " distinct ", scalar(keys %count), " top @top\n";

my $text = join(" ", @words);
(my $upper = $text) =~ s/w(\d)(\d)(\d)/W$3$2$1/g;
my @matches = ($upper =~ /W(9\d4)/g);
print "text ", length($text), " matches ", scalar(@matches), " first $matches[0]\n";

my %groups;
for my $i (0 .. 99_999) {
    push @{ $groups{ $i % 113 } }, { id => $i, name => "n$i" x (1 + $i % 3) };
}
for my $k (grep { $_ % 17 == 0 } sort { $a <=> $b } keys %groups) {
    my $g = $groups{$k};
    my $len = 0;
    $len += length($_->{name}) for @$g;
    printf "group %3d: %d items, %d name bytes\n", $k, scalar(@$g), $len;
}
delete $groups{$_} for grep { $_ % 2 } keys %groups;
my @lines = map { sprintf("%05d|%s", $_, scalar reverse("line$_")) } 1 .. 50_000;
my @sorted = sort { (split /\|/, $a)[1] cmp (split /\|/, $b)[1] } @lines[0 .. 9999];
print "sorted $sorted[0] $sorted[-1] groups left ", scalar(keys %groups), "\n";
